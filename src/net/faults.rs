//! Message faults for tests: a node started with [`MessageFaults`] (the hidden
//! `serve --inject-faults` flag) drops, duplicates and delays the gossip it receives, and
//! delays the sync requests it receives, on a seeded schedule. Packet loss and partitions are
//! done outside the node (nftables); this is the part only the node can do, since TCP hides
//! duplicated and reordered packets from it. Off unless asked for, and only in a build with
//! the `test-faults` feature (without it, nothing can ask for them).
#![cfg_attr(not(feature = "test-faults"), allow(dead_code, unreachable_pub))]

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::NetEvent;

/// Events held back at once; beyond this a delayed event is delivered at once (so faults
/// cannot make the node buffer without bound).
const MAX_HELD: usize = 1024;

/// What to do to received messages, each a percentage of them. Written (and parsed) as
/// `seed=7,drop=5,dup=10,delay=20,max-delay-ms=400`; keys left out are 0 (`max-delay-ms`: 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageFaults {
    pub seed: u64,
    /// Gossip messages dropped (never validated: not applied, not forwarded).
    pub drop: u8,
    /// Gossip messages delivered twice, the second time after a random delay.
    pub duplicate: u8,
    /// Gossip messages and sync requests delivered after a random delay (so out of order).
    pub delay: u8,
    pub max_delay: Duration,
}

/// A [`MessageFaults`] text that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad message faults {text:?}: {reason} (expected e.g. seed=7,drop=5,dup=10,delay=20,max-delay-ms=400)")]
pub struct FaultsParseError {
    text: String,
    reason: String,
}

impl FromStr for MessageFaults {
    type Err = FaultsParseError;

    fn from_str(text: &str) -> Result<MessageFaults, FaultsParseError> {
        let fail = |reason: String| FaultsParseError {
            text: text.to_string(),
            reason,
        };
        let mut faults = MessageFaults {
            seed: 0,
            drop: 0,
            duplicate: 0,
            delay: 0,
            max_delay: Duration::from_millis(200),
        };
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| fail(format!("{part:?} is not key=value")))?;
            let number: u64 = value
                .parse()
                .map_err(|_| fail(format!("{value:?} is not a number")))?;
            let percent = || match u8::try_from(number) {
                Ok(p) if p <= 100 => Ok(p),
                _ => Err(fail(format!("{key} is a percentage, not {number}"))),
            };
            match key {
                "seed" => faults.seed = number,
                "drop" => faults.drop = percent()?,
                "dup" => faults.duplicate = percent()?,
                "delay" => faults.delay = percent()?,
                "max-delay-ms" => faults.max_delay = Duration::from_millis(number),
                other => return Err(fail(format!("unknown key {other:?}"))),
            }
        }
        if u16::from(faults.drop) + u16::from(faults.duplicate) + u16::from(faults.delay) > 100 {
            return Err(fail("drop + dup + delay exceed 100".into()));
        }
        Ok(faults)
    }
}

impl std::fmt::Display for MessageFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed={},drop={},dup={},delay={},max-delay-ms={}",
            self.seed,
            self.drop,
            self.duplicate,
            self.delay,
            self.max_delay.as_millis()
        )
    }
}

/// What happens to one received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Deliver,
    Drop,
    /// Deliver now, and again after this long.
    Duplicate(Duration),
    Delay(Duration),
}

impl MessageFaults {
    /// The fate of a message, from a roll in `0..100` and a delay fraction in `0.0..1.0`.
    /// Only gossip may be dropped or duplicated: a sync request has one answer channel.
    pub(crate) fn fate(&self, roll: u8, fraction: f64, gossip: bool) -> Fate {
        let delay = self.max_delay.mul_f64(fraction);
        let (drop, duplicate) = if gossip {
            (self.drop, self.duplicate)
        } else {
            (0, 0)
        };
        if roll < drop {
            Fate::Drop
        } else if roll < drop + duplicate {
            Fate::Duplicate(delay)
        } else if roll < drop + duplicate + self.delay {
            Fate::Delay(delay)
        } else {
            Fate::Deliver
        }
    }
}

type Held = Pin<Box<dyn Future<Output = NetEvent> + Send>>;

/// The event loop's fault injector: decides each received message's fate and holds the
/// delayed ones until they are due.
pub(crate) struct Faults {
    config: MessageFaults,
    rng: StdRng,
    held: FuturesUnordered<Held>,
    /// `peerdoc_injected_faults_total{fault}`: how often each fault happened (tests check
    /// that the faults they asked for really occurred).
    injected: Family<Vec<(&'static str, &'static str)>, Counter>,
}

impl Faults {
    /// A fault injector, its counters registered in `registry`.
    pub(crate) fn new(config: MessageFaults, registry: &mut Registry) -> Faults {
        tracing::warn!("injecting message faults ({config}): for tests only");
        let injected = Family::default();
        registry.register(
            "peerdoc_injected_faults",
            "Received messages dropped, duplicated or delayed on purpose (test only)",
            injected.clone(),
        );
        Faults {
            config,
            rng: StdRng::seed_from_u64(config.seed),
            held: FuturesUnordered::new(),
            injected,
        }
    }

    /// Passes a received event through the faults: returns it if it is to be delivered now;
    /// a duplicate or a delayed event comes out of [`Faults::held`] later.
    pub(crate) fn pass(&mut self, event: NetEvent) -> Option<NetEvent> {
        let gossip = matches!(event, NetEvent::Gossip { .. });
        if !gossip && !matches!(event, NetEvent::Request { .. }) {
            return Some(event);
        }
        let fate = self
            .config
            .fate(self.rng.gen_range(0..100), self.rng.gen(), gossip);
        // Counted only when done: past MAX_HELD a delay or a duplicate does not happen.
        let (name, now) = match fate {
            Fate::Deliver => return Some(event),
            Fate::Drop => ("drop", None),
            Fate::Duplicate(after) => match copy_gossip(&event).map(|c| self.hold(c, after)) {
                Some(None) => ("duplicate", Some(event)),
                _ => return Some(event),
            },
            Fate::Delay(after) => match self.hold(event, after) {
                None => ("delay", None),
                Some(event) => return Some(event),
            },
        };
        self.injected.get_or_create(&vec![("fault", name)]).inc();
        now
    }

    /// Holds `event` for `after`; returns it instead when too many are held already.
    fn hold(&mut self, event: NetEvent, after: Duration) -> Option<NetEvent> {
        if self.held.len() >= MAX_HELD {
            return Some(event);
        }
        self.held.push(Box::pin(async move {
            tokio::time::sleep(after).await;
            event
        }));
        None
    }

    pub(crate) fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The held events, as they come due.
    pub(crate) fn held(&mut self) -> &mut FuturesUnordered<Held> {
        &mut self.held
    }
}

fn copy_gossip(event: &NetEvent) -> Option<NetEvent> {
    match event {
        NetEvent::Gossip {
            topic,
            via,
            id,
            data,
        } => Some(NetEvent::Gossip {
            topic: topic.clone(),
            via: *via,
            id: id.clone(),
            data: data.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_print_and_refuse_nonsense() {
        let faults: MessageFaults = "seed=7,drop=5,dup=10,delay=20,max-delay-ms=400"
            .parse()
            .unwrap();
        assert_eq!(
            faults,
            MessageFaults {
                seed: 7,
                drop: 5,
                duplicate: 10,
                delay: 20,
                max_delay: Duration::from_millis(400),
            }
        );
        assert_eq!(faults.to_string().parse::<MessageFaults>().unwrap(), faults);
        for bad in [
            "drop=101",
            "dup=x",
            "loss=5",
            "seed",
            "drop=50,dup=50,delay=1",
        ] {
            let err = bad.parse::<MessageFaults>().unwrap_err().to_string();
            assert!(err.contains("expected e.g."), "{bad}: {err}");
        }
    }

    #[test]
    fn the_roll_decides_the_fate_and_requests_are_only_delayed() {
        let faults: MessageFaults = "drop=10,dup=20,delay=30,max-delay-ms=100".parse().unwrap();
        let ms = Duration::from_millis;
        assert_eq!(faults.fate(0, 0.5, true), Fate::Drop);
        assert_eq!(faults.fate(9, 0.5, true), Fate::Drop);
        assert_eq!(faults.fate(10, 0.5, true), Fate::Duplicate(ms(50)));
        assert_eq!(faults.fate(29, 0.5, true), Fate::Duplicate(ms(50)));
        assert_eq!(faults.fate(30, 0.2, true), Fate::Delay(ms(20)));
        assert_eq!(faults.fate(59, 0.2, true), Fate::Delay(ms(20)));
        assert_eq!(faults.fate(60, 0.2, true), Fate::Deliver);
        assert_eq!(faults.fate(0, 0.2, false), Fate::Delay(ms(20)));
        assert_eq!(faults.fate(30, 0.2, false), Fate::Deliver);
    }
}
