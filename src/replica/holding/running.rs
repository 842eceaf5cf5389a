//! Rounds in their tasks: one at a time per document and holder (one more queued with the
//! wider plan if asked for meanwhile), numbered so that a stop's flush waits for the round
//! that carries its last edits; each round's report settles who waited for it.

use super::*;

impl Holding {
    /// Starts a round unless one runs (then one more follows it, with the wider plan). Returns
    /// the number of the round that will carry `plan`.
    pub(super) fn start(
        &mut self,
        room: RoomHandle,
        holder: PeerId,
        plan: Plan,
        reply: Option<oneshot::Sender<Result<RoundOutcome, HoldingError>>>,
    ) -> u64 {
        let tracked = self.tracked.entry((room.id, holder)).or_default();
        if tracked.running {
            // One round at a time per document and holder: this one follows it.
            tracked.again = Some(tracked.again.unwrap_or(Plan::UPLOAD).and(plan));
            tracked.waiting.extend(reply);
            return tracked.rounds + 1;
        }
        let reply: Vec<_> = reply.into_iter().chain(tracked.waiting.drain(..)).collect();
        tracked.rounds += 1;
        let number = tracked.rounds;
        tracked.running = true;
        tracked.last_round = Some(Instant::now());
        let pushed = tracked.pushed;
        let records = record_count(&room);
        let net = self.net.clone();
        let store = self.store.clone();
        let identity = self.identity.clone();
        let metrics = self.metrics.clone();
        let reports = self.reports.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            let work = async {
                // Nothing to upload and nothing else asked: no need to reach the holder.
                if !plan.records && !plan.fetch {
                    let digest = room.summary().await.ok().map(|s| s.digest);
                    if digest.is_some() && digest == pushed {
                        return Ok(RoundOutcome {
                            digest,
                            ..RoundOutcome::default()
                        });
                    }
                }
                let row = store
                    .holders(room.id)
                    .await?
                    .into_iter()
                    .find(|row| row.peer == holder.to_string())
                    .unwrap_or(HolderRow {
                        peer: holder.to_string(),
                        ..HolderRow::default()
                    });
                let round = Round {
                    net: &net,
                    room: &room,
                    holder,
                    identity: &identity,
                    metrics: &metrics,
                };
                reach(&net, &store, holder).await;
                let mut outcome = round.run(row, plan, pushed).await?;
                outcome.row.peer = holder.to_string();
                store.save_holder(room.id, outcome.row.clone()).await?;
                if plan.records {
                    outcome.records_sent = Some(records);
                }
                Ok(outcome)
            };
            // A round that panics still reports its end, or its holder would never be reached
            // again.
            let guarded = std::panic::AssertUnwindSafe(tokio::time::timeout(ROUND_TIMEOUT, work))
                .catch_unwind();
            let result = match cancel.run_until_cancelled(guarded).await {
                Some(Ok(Ok(result))) => result,
                Some(Ok(Err(_))) => Err(HoldingError::Timeout),
                Some(Err(_)) => Err(HoldingError::Failed("the round failed (a bug)".into())),
                None => Err(HoldingError::Net(NetError::Stopped)),
            };
            let _ = reports
                .send(Done {
                    doc: room.id,
                    holder,
                    round: number,
                    result,
                    reply,
                })
                .await;
        });
        number
    }

    pub(super) fn on_done(&mut self, done: Done) {
        let key = (done.doc, done.holder);
        let tracked = self.tracked.entry(key).or_default();
        tracked.running = false;
        match &done.result {
            Ok(outcome) => {
                if outcome.digest.is_some() {
                    tracked.pushed = outcome.digest;
                }
                if outcome.records_sent.is_some() {
                    tracked.records_sent = outcome.records_sent;
                }
                tracked.last_error = None;
                if outcome.applied > 0 || outcome.uploaded > 0 {
                    tracing::debug!(doc = %done.doc, holder = %done.holder, applied = outcome.applied, uploaded = outcome.uploaded, "holder round");
                }
            }
            Err(e) => {
                tracing::debug!(doc = %done.doc, holder = %done.holder, "holder round failed: {e}");
                tracked.last_error = Some(e.to_string());
            }
        }
        let again = tracked.again.take();
        let followers = std::mem::take(&mut tracked.waiting);
        for reply in done.reply {
            let _ = reply.send(clone_result(&done.result));
        }
        let next = match (again, self.rooms.get(&done.doc)) {
            (Some(plan), Some(room)) => {
                self.tracked.entry(key).or_default().waiting = followers;
                Some(self.start(room, done.holder, plan, None))
            }
            _ => {
                for reply in followers {
                    let _ = reply.send(Err(HoldingError::Failed("the document is gone".into())));
                }
                None
            }
        };
        self.end_flushes(key, done.round, next, &done.result);
    }

    /// Round `round` of `key` ended and `next` (if any) follows it: flushes that waited for
    /// this round, or for one that will not run, are answered once nothing else is left.
    fn end_flushes(
        &mut self,
        key: (DocId, PeerId),
        round: u64,
        next: Option<u64>,
        result: &Result<RoundOutcome, HoldingError>,
    ) {
        let (doc, holder) = key;
        for (waiting, _) in &mut self.flushes {
            let Some(&needed) = waiting.get(&key) else {
                continue;
            };
            if round < needed && next.is_some() {
                continue; // a later round carries the flush
            }
            let result = match result {
                Ok(_) if round >= needed => "uploaded",
                Ok(_) => {
                    tracing::warn!(%doc, %holder, "stopping before this node's latest edits reached a holder: the document is gone");
                    "failed"
                }
                Err(e) => {
                    tracing::warn!(%doc, %holder, "stopping before this node's latest edits reached a holder ({e}); the next start uploads them");
                    "failed"
                }
            };
            waiting.remove(&key);
            self.metrics
                .stop_uploads
                .get_or_create(&StopUploadLabels { result })
                .inc();
        }
        let (finished, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(waiting, _)| waiting.is_empty());
        self.flushes = waiting;
        for (_, reply) in finished {
            let _ = reply.send(());
        }
    }
}

/// A round's outcome for each that waits for it (errors are not `Clone`: their words are).
fn clone_result(result: &Result<RoundOutcome, HoldingError>) -> Result<RoundOutcome, HoldingError> {
    match result {
        Ok(outcome) => Ok(outcome.clone()),
        Err(HoldingError::Refused(why)) => Err(HoldingError::Refused(*why)),
        Err(e) => Err(HoldingError::Failed(e.to_string())),
    }
}

/// Connects to a holder (its stored addresses, or those libp2p knows) unless connected.
async fn reach(net: &Net, store: &Store, holder: PeerId) {
    let addrs = store
        .known_peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(peer, _)| *peer == holder.to_string())
        .map(|(_, addrs)| addrs.iter().filter_map(|a| a.parse().ok()).collect())
        .unwrap_or_default();
    match tokio::time::timeout(DIAL_TIMEOUT, net.dial(holder, addrs)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%holder, "cannot reach a holder: {e}"),
        Err(_) => tracing::debug!(%holder, "reaching a holder timed out"),
    }
}
