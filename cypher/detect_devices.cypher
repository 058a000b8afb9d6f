// name: detect_devices
// purpose: per-batch device check as of $known_ms (the newest time the batch may know): for each device, each of its cards and users with the time first seen on it, and its GNN risk with the event time the score is as of; returns only the devices with something to report by $known_ms (at least $min_cards cards or $min_users users, or a risk score): streaming rows back costs more than the lookups. The caller counts per transaction, as of that transaction's own time (the graph's shared-device check and the shared-device rule, each with its own limits).
// params: ids: list<string>, known_ms: integer, min_cards: integer, min_users: integer, min_risk: float = 0.5
// returns: id: string, cards: list<list>, users: list<list>, risk_score: float|null, risk_scored_ms: integer|null
UNWIND $ids AS id
MATCH (d:Device {id: id})
WITH d,
     [(d)<-[r:USED_ON]-(c:Card) WHERE r.first_seen_ms <= $known_ms | [c.id, r.first_seen_ms]] AS cards,
     [(d)<-[r:USES]-(u:User) WHERE r.first_seen_ms <= $known_ms | [u.id, r.first_seen_ms]] AS users,
     CASE WHEN d.risk_scored_ms <= $known_ms AND d.risk_score >= $min_risk THEN d.risk_score END AS risk
WHERE size(cards) >= $min_cards OR size(users) >= $min_users OR risk IS NOT NULL
RETURN d.id AS id, cards, users, risk AS risk_score, d.risk_scored_ms AS risk_scored_ms
