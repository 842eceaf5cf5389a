//! The blob service's answering side: a member's or holder's request admitted by the
//! document's certificates (or the holder's roster), throttled per peer (`serve_rate`), a piece
//! read and sent in a bounded task, and a writer's Keep checked (room, possession) before a
//! download starts.

use super::*;

impl BlobService {
    pub(super) fn refuse(&self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, why: Refusal) {
        self.ctx.metrics.refused("blob", why.as_str(), 1);
        if matches!(why, Refusal::NotMember | Refusal::Removed) {
            tracing::info!(%peer, reason = why.as_str(), "blob request refused");
        }
        let _ = self
            .ctx
            .net
            .try_respond(channel, BlobResponse::Refused(why).encode());
    }

    pub(super) fn on_request(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let Some(room) = self.rooms.by_topic(&request.topic) else {
            return self.refuse(peer, channel, Refusal::Missing);
        };
        let access = room.access();
        // Another owner's document of the same topic is not this one.
        if access.membership.owner() != request.owner {
            return self.refuse(peer, channel, Refusal::Missing);
        }
        let key = key_of(&peer).unwrap_or([0; 32]);
        let current = access.keys.current().0;
        let admission = admit(
            &access.membership,
            &self.ctx.me,
            &key,
            current,
            current,
            Asked::Content,
        );
        // A holder of the document fetches what it is asked to keep (it reads, sealed).
        let holder = access.membership.is_holder(&key) && !matches!(request.body, BlobAsk::Keep(_));
        if let Admission::RecordsOnly(why) = admission {
            let refusal = match why {
                Why::Removed => Refusal::Removed,
                _ => Refusal::NotMember,
            };
            if !(holder && refusal == Refusal::NotMember) {
                return self.refuse(peer, channel, refusal);
            }
        }
        if let BlobAsk::Keep(_) = request.body {
            // Members keep what they add or fetch themselves; only holders keep for others.
            return self.refuse(peer, channel, Refusal::Missing);
        }
        self.serve(peer, request, channel, false);
    }

    /// Answers an admitted request: a piece (throttled per peer), whether the blob is here, or,
    /// on a holder, a writer's ask to keep one.
    pub(super) fn serve(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
        holding: bool,
    ) {
        if let (BlobAsk::Keep(size), true) = (request.body, holding) {
            return self.keep(peer, request, size, channel);
        }
        let delay = match request.body {
            BlobAsk::Piece(_) => match self.throttle(peer) {
                Some(delay) => delay,
                // Asked faster than the rate allows for longer than a request waits.
                None => return self.refuse(peer, channel, Refusal::Busy),
            },
            BlobAsk::Have | BlobAsk::Keep(_) => Duration::ZERO,
        };
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            return self.refuse(peer, channel, Refusal::Busy);
        };
        let ctx = self.ctx.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            let answer = cancel
                .run_until_cancelled(async {
                    let answer = answer(&ctx, &request).await;
                    // The permit bounds reads at once, not the throttle's waits.
                    drop(permit);
                    tokio::time::sleep(delay).await;
                    answer
                })
                .await;
            if let Some(answer) = answer {
                if let BlobResponse::Refused(why) = &answer {
                    ctx.metrics.refused("blob", why.as_str(), 1);
                }
                if let BlobResponse::Piece(slice) = &answer {
                    ctx.metrics.blob_bytes_sent.inc_by(slice.len() as u64);
                }
                let _ = ctx.net.try_respond(channel, answer.encode());
            }
        });
    }

    /// A writer asks this holder to keep a blob: within the limits, it fetches it from the
    /// writer (and says whether it has it whole already). A blob here already (kept for
    /// another document) is attached only once the writer shows it has it: a piece of it,
    /// chosen at random, that verifies (knowing a hash is not having the blob).
    fn keep(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        size: u64,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if size > self.ctx.limits.max_bytes {
            return self.refuse(peer, channel, Refusal::Full);
        }
        let running = self.downloads.contains_key(&request.hash);
        if !running && self.downloads.len() >= MAX_DOWNLOADS {
            return self.refuse(peer, channel, Refusal::Busy);
        }
        let (ctx, finished) = (self.ctx.clone(), self.finished.clone());
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            let doc = HeldKey {
                topic: request.topic,
                owner: request.owner,
            };
            let answer = cancel
                .run_until_cancelled(async {
                    match room_for(&ctx, doc, request.hash, size).await {
                        Ok(true) => {}
                        Ok(false) => return BlobResponse::Refused(Refusal::Full),
                        Err(_) => return BlobResponse::Refused(Refusal::Busy),
                    }
                    let here = match ctx.store.blob(request.hash).await {
                        Ok(row) => row,
                        Err(_) => return BlobResponse::Refused(Refusal::Busy),
                    };
                    if let Some(row) = here.as_ref().filter(|r| r.size != size && r.complete) {
                        tracing::info!(blob = %request.hash, "a Keep names {size} bytes; the blob here has {}", row.size);
                        return BlobResponse::Refused(Refusal::Missing);
                    }
                    let complete = here
                        .as_ref()
                        .is_some_and(|r| r.complete && ctx.files.has_complete(&request.hash));
                    if complete {
                        if !possesses(&ctx, peer, &request, size).await {
                            return BlobResponse::Refused(Refusal::Missing);
                        }
                        if let Some(mut row) = here {
                            row.added = crate::replica::store::unix_now_ms() as i64 / 1000;
                            let _ = ctx.store.put_blob(row, doc).await;
                        }
                    } else if !running {
                        let job = FetchJob {
                            hash: request.hash,
                            size,
                            topic: request.topic,
                            owner: request.owner,
                            sources: vec![peer],
                            quiet: true,
                        };
                        let (reply, _) = oneshot::channel();
                        let _ = finished.send(Input::Fetch(job, reply)).await;
                    }
                    BlobResponse::Have { complete }
                })
                .await;
            if let Some(answer) = answer {
                if let BlobResponse::Refused(why) = &answer {
                    ctx.metrics.refused("blob", why.as_str(), 1);
                }
                let _ = ctx.net.try_respond(channel, answer.encode());
            }
        });
    }

    /// How long to hold a piece back so that `peer` gets at most `serve_rate` bytes a second;
    /// `None` when that is longer than a requester waits (it is refused as busy instead).
    fn throttle(&mut self, peer: PeerId) -> Option<Duration> {
        let Some(rate) = self.ctx.limits.serve_rate.filter(|&r| r > 0) else {
            return Some(Duration::ZERO);
        };
        let now = Instant::now();
        if self.paid_until.len() >= MAX_RATED_PEERS {
            self.paid_until.retain(|_, until| *until > now);
        }
        let cost = Duration::from_secs_f64(crate::core::blob::PIECE_BYTES as f64 / rate as f64);
        let until = self.paid_until.entry(peer).or_insert(now);
        let next = (*until).max(now) + cost;
        let delay = next.saturating_duration_since(now + cost);
        if delay > MAX_THROTTLE_DELAY {
            return None;
        }
        *until = next;
        Some(delay)
    }
}
