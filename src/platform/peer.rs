//! Who is at the other end of a loopback TCP connection: the user that owns the peer's
//! socket, and the process that holds it. Loopback is not "this user": every account on the
//! machine can connect to 127.0.0.1.
//!
//! Linux: the kernel lists every TCP socket with its owner's uid and inode in
//! `/proc/net/tcp` and `/proc/net/tcp6`. The peer's socket is the one whose local address
//! is our connection's remote address and whose remote address is our local one; the
//! process holding it is the one with a `socket:[inode]` link among its descriptors.
//! Elsewhere the owner is unknown ([`Owner::Unknown`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The owner of the peer's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The user this process runs as.
    Same,
    /// Another user (uid).
    Other(u32),
    /// Not known: no such socket listed (the peer went away), or no way to ask here.
    Unknown,
}

/// The peer of the connection `ours_local` ↔ `ours_remote` as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSocket {
    pub uid: u32,
    pub inode: u64,
}

/// The owner of the peer's end of the loopback connection between `local` (our address)
/// and `remote` (the peer's).
pub fn owner(local: SocketAddr, remote: SocketAddr) -> Owner {
    #[cfg(target_os = "linux")]
    {
        owner_of(find(local, remote))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (local, remote);
        Owner::Unknown
    }
}

/// Whose a peer socket found by [`find`] is.
pub fn owner_of(socket: Option<PeerSocket>) -> Owner {
    #[cfg(unix)]
    {
        match socket {
            // SAFETY: geteuid has no preconditions and cannot fail.
            Some(p) if p.uid == unsafe { libc::geteuid() } => Owner::Same,
            Some(p) => Owner::Other(p.uid),
            None => Owner::Unknown,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = socket;
        Owner::Unknown
    }
}

/// Whether [`owner`] can tell on this platform (else a server cannot refuse other users).
pub const fn owner_known_here() -> bool {
    cfg!(target_os = "linux")
}

/// The peer's socket of the connection `local` ↔ `remote`, from `/proc/net/tcp{,6}`.
#[cfg(target_os = "linux")]
pub fn find(local: SocketAddr, remote: SocketAddr) -> Option<PeerSocket> {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        find_in(&text, local, remote)
    })
}

/// The entry whose local address is `remote` and whose remote address is `local` (the
/// peer's view of the connection), in the text of `/proc/net/tcp` or `/proc/net/tcp6`. An
/// IPv4 connection may be listed in `tcp6` with IPv4-mapped addresses (a dual-stack client
/// socket).
pub fn find_in(text: &str, local: SocketAddr, remote: SocketAddr) -> Option<PeerSocket> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
        if f.len() < 10 {
            return None;
        }
        let (l, r) = (parse_addr(f[1])?, parse_addr(f[2])?);
        if !(same(l, remote) && same(r, local)) {
            return None;
        }
        Some(PeerSocket {
            uid: f[7].parse().ok()?,
            inode: f[9].parse().ok()?,
        })
    })
}

fn same(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    a.port() == b.port() && canon(a.ip()) == canon(b.ip())
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address words as the
/// kernel printed them, each a 32-bit number in this machine's byte order.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The process (pid and start time, which together never name two processes) that holds
/// the socket `inode`, among this user's processes.
#[cfg(target_os = "linux")]
pub fn process_of(inode: u64) -> Option<(u32, u64)> {
    use std::os::unix::fs::MetadataExt;
    let target = format!("socket:[{inode}]");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.metadata().map(|m| m.uid()).ok() != Some(me) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*target));
        if holds {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The fields after the command name, which is in parentheses and may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let start = rest.split_whitespace().nth(19)?.parse().ok()?;
            return Some((pid, start));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_peer_entry_in_proc_net_tcp_text() {
        // Server 127.0.0.1:8080 (0x1F90), client 127.0.0.1:40000 (0x9C40) owned by uid 1001.
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {lo:08X}:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1\n\
             1: {lo:08X}:1F90 {lo:08X}:9C40 01 00000000:00000000 00:00000000 00000000     0        0 101 1\n\
             2: {lo:08X}:9C40 {lo:08X}:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 102 1\n"
        );
        let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            find_in(&text, server, client),
            Some(PeerSocket {
                uid: 1001,
                inode: 102
            })
        );
        assert_eq!(
            find_in(&text, server, "127.0.0.1:40001".parse().unwrap()),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_loopback_connection_belongs_to_this_user_and_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, remote) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(remote, client.local_addr().unwrap());
        assert_eq!(owner(local, remote), Owner::Same);
        let peer = find(local, remote).unwrap();
        let (pid, _) = process_of(peer.inode).unwrap();
        assert_eq!(pid, std::process::id());
        // An IPv6 connection is found in tcp6.
        if let Ok(l6) = std::net::TcpListener::bind("[::1]:0") {
            let c6 = std::net::TcpStream::connect(l6.local_addr().unwrap()).unwrap();
            let (_s6, r6) = l6.accept().unwrap();
            assert_eq!(owner(l6.local_addr().unwrap(), r6), Owner::Same);
            drop(c6);
        }
    }
}
