// name: detect_devices
// purpose: per-batch shared-device check; returns only the devices with something to report (linked to more than $max_cards cards or $max_users users, a GNN risk, or a fraud mark): streaming rows back costs more than the lookups
// params: ids: list<string>, max_cards: integer, max_users: integer, min_risk: float = 0.5
// returns: id: string, cards: integer, users: integer, risk_score: float|null, fraud_confirmed_ms: integer|null
UNWIND $ids AS id
MATCH (d:Device {id: id})
WITH d, COUNT { (d)<-[:USED_ON]-(:Card) } AS cards, COUNT { (d)<-[:USES]-(:User) } AS users
WHERE cards > $max_cards OR users > $max_users OR d.risk_score >= $min_risk
   OR d.fraud_confirmed_ms IS NOT NULL
RETURN d.id AS id, cards, users, d.risk_score AS risk_score, d.fraud_confirmed_ms AS fraud_confirmed_ms
