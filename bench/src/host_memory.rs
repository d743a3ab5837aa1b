//! Whether the machine is a guest that gives the memory it frees back to
//! its host (virtio-balloon free page reporting). There, a page the page
//! cache takes again may first cost a fault in the host: in a five-minute
//! run at 50k msg/s the broker's appends took ten times as long once the
//! page cache grew into memory the guest had given back, and the broker
//! used twice the CPU (tuning/README.md, "Free page reporting"). Results
//! depend on it as much as on the broker, so they name it.

use std::path::Path;

/// The balloon's feature bit for free page reporting.
const VIRTIO_BALLOON_F_REPORTING: usize = 5;
const BALLOON_DEVICES: &str = "/sys/bus/virtio/drivers/virtio_balloon";
const REPORTING_ORDER: &str = "/sys/module/page_reporting/parameters/page_reporting_order";

/// A sentence (without its full stop) on free page reporting for a
/// report; `None` where no balloon device offers it (bare metal, or a VM
/// without it).
pub fn free_page_reporting() -> Option<String> {
    let features: Vec<String> = std::fs::read_dir(BALLOON_DEVICES)
        .ok()?
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("features")).ok())
        .collect();
    let order = read_u32(Path::new(REPORTING_ORDER));
    let max_order = std::fs::read_to_string("/proc/buddyinfo")
        .ok()
        .and_then(|b| largest_order(&b));
    describe(&features, order, max_order)
}

fn read_u32(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The largest order of free block the buddy allocator keeps: one column
/// of counts per order in each zone's line of `/proc/buddyinfo`.
fn largest_order(buddyinfo: &str) -> Option<u32> {
    let line = buddyinfo.lines().next()?;
    let counts = line.split_whitespace().skip(4).count();
    u32::try_from(counts).ok()?.checked_sub(1)
}

/// `features`: each balloon device's feature bits as the kernel prints
/// them ('0'/'1' per bit, bit 0 first); `order`: the smallest block the
/// guest reports; `max_order`: the largest block it has.
fn describe(features: &[String], order: Option<u32>, max_order: Option<u32>) -> Option<String> {
    let reports = features
        .iter()
        .any(|f| f.as_bytes().get(VIRTIO_BALLOON_F_REPORTING) == Some(&b'1'));
    if !reports {
        return None;
    }
    const COST: &str = "a page the page cache takes again may first cost a fault in the host";
    Some(match (order, max_order) {
        (Some(o), Some(max)) if o > max => format!(
            "This VM's balloon offers free page reporting, and it is off \
             (page_reporting_order {o}, above the largest free block, order {max}): \
             memory the guest frees stays with it"
        ),
        (Some(o), _) => format!(
            "This VM gives the memory it frees back to its host (virtio-balloon free \
             page reporting, free blocks of order {o} and up): {COST}"
        ),
        (None, _) => format!(
            "This VM's balloon offers free page reporting (its order could not be \
             read): {COST}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: &str = "0110010100000000000000000000000010000000";
    const OFF: &str = "0110000100000000000000000000000010000000";

    #[test]
    fn reporting_is_named_on_off_or_not_at_all() {
        let on = describe(&[ON.into()], Some(9), Some(10)).unwrap();
        assert!(on.contains("gives the memory it frees back"), "{on}");
        let off = describe(&[ON.into()], Some(11), Some(10)).unwrap();
        assert!(off.contains("it is off"), "{off}");
        assert_eq!(describe(&[OFF.into()], Some(9), Some(10)), None);
        assert_eq!(describe(&[], None, None), None);
    }

    #[test]
    fn the_largest_order_is_the_last_column() {
        let buddyinfo = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3 \n\
                         Node 0, zone   Normal      0    130    721    256    246   1268   1930   1637   1343   1097   3826 \n";
        assert_eq!(largest_order(buddyinfo), Some(10));
    }
}
