// name: export_relationships
// purpose: every aggregate relationship of the fraud graph with its endpoints (export to networkx / PyG)
// params: none
// returns: a_label: string, a: string, type: string, b_label: string, b: string, count: integer, amount_minor_sum: integer, first_seen_ms: integer, last_seen_ms: integer, fraud_count: integer
MATCH (a)-[r:HOLDS|PAID_AT|USED_ON|USES|FROM_IP]->(b)
RETURN head([l IN labels(a) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS a_label, a.id AS a, type(r) AS type, head([l IN labels(b) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS b_label, b.id AS b,
       r.count AS count, r.amount_minor_sum AS amount_minor_sum,
       r.first_seen_ms AS first_seen_ms, r.last_seen_ms AS last_seen_ms,
       r.fraud_count AS fraud_count
