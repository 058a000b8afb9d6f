// name: detect_cards
// purpose: per-batch card checks as of $known_ms (the newest time the batch may know): the card's holders with the time each was first seen holding it, the earliest time a confirmed fraud lay within 2 hops (over holders, devices and the cards and users on them; sites are left out: every card meets every popular site) counting a fraud as known from its label's report time and a path from when its last link appeared, and the GNN risk with the time it is as of; returns only the cards with something to report by $known_ms. The caller decides per transaction, as of that transaction's own time.
// params: ids: list<string>, known_ms: integer, min_risk: float = 0.5
// returns: id: string, holders: list<map{id: string, ms: integer}>, near_fraud: string|null, near_fraud_ms: integer|null, risk_score: float|null, risk_scored_ms: integer|null
UNWIND $ids AS id
MATCH (c:Card {id: id})
WITH c, [(u:User)-[r:HOLDS]->(c) WHERE r.first_seen_ms <= $known_ms | {id: u.id, ms: r.first_seen_ms}] AS holders
OPTIONAL CALL (c) {
  MATCH p = (c)-[:HOLDS|USED_ON|USES*1..2]-(x)
  WHERE x <> c AND x.fraud_reported_ms <= $known_ms
  WITH x, reduce(m = x.fraud_reported_ms, r IN relationships(p) |
                 CASE WHEN r.first_seen_ms > m THEN r.first_seen_ms ELSE m END) AS known
  WHERE known <= $known_ms
  RETURN head([l IN labels(x) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) + ' ' + x.id AS near, known AS near_ms
  ORDER BY near_ms, near
  LIMIT 1
}
WITH c, holders, near, near_ms,
     CASE WHEN c.risk_scored_ms <= $known_ms AND c.risk_score >= $min_risk THEN c.risk_score END AS risk
WHERE size(holders) > 1 OR near IS NOT NULL OR risk IS NOT NULL
RETURN c.id AS id, holders, near AS near_fraud, near_ms AS near_fraud_ms,
       risk AS risk_score, c.risk_scored_ms AS risk_scored_ms
