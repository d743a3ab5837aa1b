//! Nodes on a real network: one network namespace per node, one for the
//! clients (this process's workload and checks), joined by veth pairs to a
//! bridge in a hub namespace, so a link can be cut without touching a
//! process.
//!
//! Addresses are in [`SUBNET`] and exist only inside the namespaces this
//! module creates; nothing is configured in the namespace the tool started
//! in, and no packet can leave the hub. Cuts are blackhole routes in the
//! sender's namespace: what it sends to that address is dropped (a
//! connection attempt fails at once, an established one stalls as if the
//! peer vanished), while the other direction still delivers.
//!
//! Every namespace is in [`CREATED`] from creation to removal;
//! [`remove_all`] (run by `Net`'s Drop, the SIGINT/SIGTERM handler and the
//! end of `main`) deletes them, and `sluice-chaos cleanup` deletes those a
//! SIGKILLed run left behind.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The first three octets of every address (RFC 1918, namespaces only).
const SUBNET: &str = "10.77.0";
/// The clients' host number.
const CLIENT_HOST: u8 = 250;
/// The prefix of every namespace a run creates: `<prefix><pid>-<role>`.
pub const NETNS_PREFIX: &str = "sluice-chaos-";

/// Namespaces created and not yet deleted.
static CREATED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Runs `ip ARGS`; Err with its stderr if it fails.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this process may create network namespaces (root, or
/// CAP_SYS_ADMIN + CAP_NET_ADMIN); Err says why not.
pub fn available() -> Result<()> {
    let name = format!("{NETNS_PREFIX}{}-probe", std::process::id());
    ip(&["netns", "add", &name])?;
    ip(&["netns", "del", &name])
}

/// Deletes every namespace this process created. Safe to call twice.
pub fn remove_all() {
    let names = match CREATED.lock() {
        Ok(mut c) => std::mem::take(&mut *c),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for n in names {
        if let Err(e) = ip(&["netns", "del", &n]) {
            eprintln!("sluice-chaos: {e:#}");
        }
    }
}

/// Deletes namespaces left by runs whose process is gone (or every one
/// with our prefix when `all`); returns their names.
pub fn cleanup(all: bool) -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("run `ip netns list`")?;
    let mut removed = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `ip netns list` prints `NAME` or `NAME (id: N)`.
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let owner: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
        // SAFETY: kill(pid, 0) only checks that the process exists.
        let alive = owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if all || !alive {
            ip(&["netns", "del", name])?;
            removed.push(name.to_string());
        }
    }
    Ok(removed)
}

fn namespace(role: &str) -> String {
    format!("{NETNS_PREFIX}{}-{role}", std::process::id())
}

fn add_namespace(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    CREATED.lock().unwrap().insert(name.to_string());
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// The address of node `id`.
pub fn node_host(id: i32) -> String {
    format!("{SUBNET}.{id}")
}

/// The network of one run.
pub struct Net {
    hub: String,
    /// Node namespaces, by node id.
    nodes: Vec<(i32, String)>,
    client: String,
    /// The namespace this thread was in before [`Net::enter_client`].
    home: Option<File>,
    /// One-way cuts in force: (from, to).
    cuts: BTreeSet<(i32, i32)>,
}

impl Net {
    /// Creates the hub, one namespace per node id and the clients'.
    pub fn create(ids: &[i32]) -> Result<Net> {
        assert!(
            ids.iter().all(|&id| (1..CLIENT_HOST as i32).contains(&id)),
            "node ids must be host numbers below {CLIENT_HOST}"
        );
        let mut net = Net {
            hub: namespace("hub"),
            nodes: Vec::new(),
            client: namespace("clients"),
            home: None,
            cuts: BTreeSet::new(),
        };
        add_namespace(&net.hub)?;
        ip(&["-n", &net.hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.hub, "link", "set", "br0", "up"])?;
        for &id in ids {
            let ns = namespace(&format!("node-{id}"));
            net.attach(&ns, &format!("n{id}"), &node_host(id))?;
            net.nodes.push((id, ns));
        }
        net.attach(
            &net.client.clone(),
            "cl",
            &format!("{SUBNET}.{CLIENT_HOST}"),
        )?;
        Ok(net)
    }

    /// A namespace with `eth0` at `addr`, its veth peer on the bridge.
    fn attach(&self, ns: &str, tag: &str, addr: &str) -> Result<()> {
        add_namespace(ns)?;
        // Created in the hub, so no interface ever exists where we started.
        let (hub_end, far_end) = (format!("h-{tag}"), format!("v-{tag}"));
        ip(&[
            "-n", &self.hub, "link", "add", &hub_end, "type", "veth", "peer", "name", &far_end,
            "netns", ns,
        ])?;
        ip(&[
            "-n", &self.hub, "link", "set", &hub_end, "master", "br0", "up",
        ])?;
        ip(&["-n", ns, "link", "set", &far_end, "name", "eth0"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])
    }

    fn ns_of(&self, id: i32) -> Result<&str> {
        match self.nodes.iter().find(|(n, _)| *n == id) {
            Some((_, ns)) => Ok(ns),
            None => bail!("no namespace for node {id}"),
        }
    }

    /// The file a child opens to join node `id`'s namespace.
    pub fn node_netns(&self, id: i32) -> Result<std::path::PathBuf> {
        Ok(std::path::Path::new("/run/netns").join(self.ns_of(id)?))
    }

    /// Moves this thread into the clients' namespace; threads it starts
    /// from now on (librdkafka's) are born there.
    pub fn enter_client(&mut self) -> Result<()> {
        let home = File::open("/proc/thread-self/ns/net").context("open own netns")?;
        join(&std::path::Path::new("/run/netns").join(&self.client))?;
        self.home = Some(home);
        Ok(())
    }

    /// Drops what `from` sends to `to`.
    pub fn cut(&mut self, from: i32, to: i32) -> Result<()> {
        if self.cuts.insert((from, to)) {
            let dst = format!("{}/32", node_host(to));
            ip(&["-n", self.ns_of(from)?, "route", "add", "blackhole", &dst])?;
        }
        Ok(())
    }

    /// Drops both directions between `id` and the clients.
    pub fn cut_clients(&mut self, id: i32) -> Result<()> {
        let ns = self.ns_of(id)?.to_string();
        let client = format!("{SUBNET}.{CLIENT_HOST}/32");
        ip(&["-n", &ns, "route", "add", "blackhole", &client])?;
        ip(&[
            "-n",
            &self.client,
            "route",
            "add",
            "blackhole",
            &format!("{}/32", node_host(id)),
        ])?;
        self.cuts.insert((id, -1));
        Ok(())
    }

    /// Removes every cut.
    pub fn heal(&mut self) -> Result<()> {
        for (from, to) in std::mem::take(&mut self.cuts) {
            if to == -1 {
                let client = format!("{SUBNET}.{CLIENT_HOST}/32");
                ip(&[
                    "-n",
                    self.ns_of(from)?,
                    "route",
                    "del",
                    "blackhole",
                    &client,
                ])?;
                let node = format!("{}/32", node_host(from));
                ip(&["-n", &self.client, "route", "del", "blackhole", &node])?;
            } else {
                let dst = format!("{}/32", node_host(to));
                ip(&["-n", self.ns_of(from)?, "route", "del", "blackhole", &dst])?;
            }
        }
        Ok(())
    }
}

/// setns(2) of this thread into the network namespace at `path`.
pub fn join(path: &std::path::Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
    join_fd(f.as_raw_fd()).with_context(|| format!("setns {}", path.display()))
}

fn join_fd(fd: i32) -> Result<()> {
    // SAFETY: setns(2) on an open namespace fd; it changes only this
    // thread's namespace and touches no memory.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        bail!("{}", std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            if let Err(e) = join_fd(home.as_raw_fd()) {
                eprintln!("sluice-chaos: return to the first network namespace: {e:#}");
            }
        }
        let mine: Vec<String> = self
            .nodes
            .iter()
            .map(|(_, ns)| ns.clone())
            .chain([self.client.clone(), self.hub.clone()])
            .collect();
        for ns in mine {
            if CREATED.lock().unwrap().remove(&ns) {
                if let Err(e) = ip(&["netns", "del", &ns]) {
                    eprintln!("sluice-chaos: {e:#}");
                }
            }
        }
    }
}
