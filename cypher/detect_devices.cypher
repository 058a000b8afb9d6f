// name: detect_devices
// purpose: per-batch shared-device check as of $known_ms (the newest time the batch may know): for each device, when each of its cards and users was first seen on it, and its GNN risk with the event time the score is as of; returns only the devices with something to report by $known_ms (more than $max_cards cards or $max_users users, or a risk score): streaming rows back costs more than the lookups. The caller counts per transaction, as of that transaction's own time.
// params: ids: list<string>, known_ms: integer, max_cards: integer, max_users: integer, min_risk: float = 0.5
// returns: id: string, card_ms: list<integer>, user_ms: list<integer>, risk_score: float|null, risk_scored_ms: integer|null
UNWIND $ids AS id
MATCH (d:Device {id: id})
WITH d,
     [(d)<-[r:USED_ON]-(:Card) WHERE r.first_seen_ms <= $known_ms | r.first_seen_ms] AS card_ms,
     [(d)<-[r:USES]-(:User) WHERE r.first_seen_ms <= $known_ms | r.first_seen_ms] AS user_ms,
     CASE WHEN d.risk_scored_ms <= $known_ms AND d.risk_score >= $min_risk THEN d.risk_score END AS risk
WHERE size(card_ms) > $max_cards OR size(user_ms) > $max_users OR risk IS NOT NULL
RETURN d.id AS id, card_ms, user_ms, risk AS risk_score, d.risk_scored_ms AS risk_scored_ms
