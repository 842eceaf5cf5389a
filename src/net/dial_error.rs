//! A failed dial in a few words for the user ("connection refused at 2 addresses"); libp2p's
//! own text names every address and its error chain, often 2,000 characters (logged at debug).

use std::io::ErrorKind;

use libp2p::swarm::DialError;
use libp2p::TransportError;

/// What went wrong, briefly: the most telling cause over all the addresses tried.
pub(super) fn short(error: &DialError) -> String {
    match error {
        DialError::LocalPeerId { .. } => "that is this node itself".into(),
        DialError::NoAddresses => "no address is known for it".into(),
        DialError::DialPeerConditionFalse(_) => "a dial is already under way".into(),
        DialError::Aborted => "the attempt was aborted".into(),
        DialError::WrongPeerId { .. } => "a different node answers at its address".into(),
        DialError::Denied { .. } => "this node's connection limits refused it".into(),
        DialError::Transport(attempts) => {
            let causes: Vec<&'static str> = attempts
                .iter()
                .map(|(_, error)| match error {
                    TransportError::MultiaddrNotSupported(_) => "address not supported",
                    TransportError::Other(error) => cause(error),
                })
                .collect();
            // Refused or unreachable says more than a timeout, which says more than "failed".
            let worst = [
                "connection refused",
                "no route to it",
                "timed out",
                "address not supported",
            ]
            .into_iter()
            .find(|c| causes.contains(c))
            .unwrap_or("could not connect");
            match attempts.len() {
                1 => worst.into(),
                n => format!("{worst} (tried {n} addresses)"),
            }
        }
    }
}

/// An I/O error (and its sources) as one of a few causes.
fn cause(error: &std::io::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return "connection refused",
                ErrorKind::TimedOut => return "timed out",
                ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
                    return "no route to it"
                }
                _ => {}
            }
        }
        source = e.source();
    }
    let text = error.to_string().to_ascii_lowercase();
    if text.contains("refused") {
        "connection refused"
    } else if text.contains("timed out") || text.contains("timeout") {
        "timed out"
    } else if text.contains("unreachable") {
        "no route to it"
    } else {
        "could not connect"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::Multiaddr;

    fn attempt(kind: ErrorKind) -> (Multiaddr, TransportError<std::io::Error>) {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        (
            addr,
            TransportError::Other(std::io::Error::new(kind, "x".repeat(500))),
        )
    }

    #[test]
    fn many_addresses_say_the_most_telling_cause_briefly() {
        let error = DialError::Transport(vec![
            attempt(ErrorKind::TimedOut),
            attempt(ErrorKind::ConnectionRefused),
            attempt(ErrorKind::Other),
        ]);
        assert_eq!(short(&error), "connection refused (tried 3 addresses)");
        let error = DialError::Transport(vec![attempt(ErrorKind::TimedOut)]);
        assert_eq!(short(&error), "timed out");
        let wrapped = std::io::Error::other(std::io::Error::from(ErrorKind::ConnectionRefused));
        assert_eq!(cause(&wrapped), "connection refused");
    }
}
