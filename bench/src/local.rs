//! Finding the process behind a local `--target`, so its CPU and memory can
//! be read from /proc as for a spawned broker.
//!
//! Only loopback addresses are looked up: a listener found for a remote
//! host's port would be some other process on this machine. The lookup is
//! the one `ss -p` does: the listening socket's inode from /proc/net/tcp and
//! tcp6, then the process holding a descriptor to it.

use std::net::{IpAddr, ToSocketAddrs};

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";
/// Processes scanned at most, so a huge process table cannot stall a run.
const PROCESSES_MAX: usize = 100_000;

/// The pid listening on `addr` (`HOST:PORT`) when HOST is this machine's
/// loopback; `None` when it is not local or cannot be seen (another user's
/// process, another network namespace).
pub fn listening_pid(addr: &str) -> Option<u32> {
    let resolved: Vec<_> = addr.to_socket_addrs().ok()?.collect();
    let first = resolved.first()?;
    if !resolved.iter().all(|a| a.ip().is_loopback()) {
        return None;
    }
    let port = first.port();
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    owner_of(&inodes)
}

/// Inodes of sockets listening on `port` at a loopback or the wildcard
/// address, from one /proc/net/tcp{,6} table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            let (host_hex, port_hex) = local.split_once(':')?;
            let matches = *state == TCP_LISTEN
                && u16::from_str_radix(port_hex, 16).ok()? == port
                && (host_hex.chars().all(|c| c == '0') || is_loopback_hex(host_hex));
            matches.then(|| inode.parse().ok()).flatten()
        })
        .collect()
}

/// Whether a /proc/net/tcp address (IPv4: one little-endian word; IPv6: four
/// of them) is a loopback address: 127.0.0.0/8, ::1 or ::ffff:127.x.
fn is_loopback_hex(host_hex: &str) -> bool {
    let words: Option<Vec<u32>> = (0..host_hex.len() / 8)
        .map(|i| u32::from_str_radix(host_hex.get(8 * i..8 * i + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words
        .unwrap_or_default()
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let listener = if let Ok(v4) = <[u8; 4]>::try_from(&bytes[..]) {
        IpAddr::from(v4)
    } else if let Ok(v6) = <[u8; 16]>::try_from(&bytes[..]) {
        IpAddr::from(v6)
    } else {
        return false;
    };
    listener.to_canonical().is_loopback()
}

/// The first process holding a descriptor to one of `inodes`.
fn owner_of(inodes: &[u64]) -> Option<u32> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc")
        .ok()?
        .take(PROCESSES_MAX)
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| link.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_this_process_listening_on_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert_eq!(listening_pid(&addr), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_pid(&addr), None, "nothing listens any more");
    }

    #[test]
    fn remote_hosts_are_not_looked_up() {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening_pid(&format!("192.0.2.1:{port}")), None);
    }

    #[test]
    fn proc_net_tcp_lines_parse() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
             0: 0100007F:2384 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n   \
             1: 0100007F:2385 0100007F:2384 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 9092), vec![4242]);
        assert!(listening_inodes(table, 9093).is_empty(), "not listening");
        assert!(is_loopback_hex("0100007F"));
        assert!(!is_loopback_hex("0100000A"), "10.0.0.1");
        assert!(is_loopback_hex("00000000000000000000000001000000"), "::1");
    }
}
