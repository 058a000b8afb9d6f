// name: project_rel_paid_at
// purpose: add a batch's aggregated activity between a card and a site it paid at (one row per pair)
// params: rows: list<map{a: string, b: string, count: integer, amount_minor: integer, first_ms: integer, last_ms: integer}>
// returns: nothing
UNWIND $rows AS r
MATCH (a:Card {id: r.a})
MATCH (b:Site {id: r.b})
MERGE (a)-[x:PAID_AT]->(b)
ON CREATE SET x.count = r.count, x.amount_minor_sum = r.amount_minor,
              x.first_seen_ms = r.first_ms, x.last_seen_ms = r.last_ms, x.fraud_count = 0
ON MATCH SET x.count = x.count + r.count,
             x.amount_minor_sum = x.amount_minor_sum + r.amount_minor,
             x.first_seen_ms = CASE WHEN r.first_ms < x.first_seen_ms THEN r.first_ms ELSE x.first_seen_ms END,
             x.last_seen_ms = CASE WHEN r.last_ms > x.last_seen_ms THEN r.last_ms ELSE x.last_seen_ms END
