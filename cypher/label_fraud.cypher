// name: label_fraud
// purpose: apply confirmed-fraud labels once each (a FraudLabel node per transaction makes a replay a no-op): mark the transaction, its card, user and device as confirmed fraud (fraud_confirmed_ms: the event time of the latest fraud; fraud_reported_ms: the earliest report time, from which the fraud counts as known), count the fraud at the site and on the card-site relationship, and keep the label's report time, event time and site on its FraudLabel node (the compromised-site check reads them as of each transaction's time); resolves entities from the transaction detail in the graph, else from the label's own ids (with FRAUDGRAPH_GRAPH_DETAIL=flagged an allowed transaction has no detail)
// params: rows: list<map{transaction_id: string, card_id: string|null, user_id: string|null, site_id: string|null, device_id: string|null, event_ms: integer|null, reported_ms: integer, source: string}>
// returns: transaction_id: string, card_id: string|null, user_id: string|null, site_id: string|null, device_id: string|null, event_ms: integer|null
UNWIND $rows AS r
OPTIONAL MATCH (seen:FraudLabel {id: r.transaction_id})
WITH r WHERE seen IS NULL
OPTIONAL MATCH (t:Transaction {id: r.transaction_id})
OPTIONAL MATCH (t)<-[:MADE]-(tc:Card)
OPTIONAL MATCH (t)-[:AT]->(ts:Site)
OPTIONAL MATCH (t)-[:ON]->(td:Device)
SET t.label = 'fraud'
WITH r, t, coalesce(tc.id, r.card_id) AS card_id, coalesce(t.user_id, r.user_id) AS user_id,
     coalesce(ts.id, r.site_id) AS site_id, td, coalesce(t.event_ms, r.event_ms) AS event_ms
CREATE (:FraudLabel {id: r.transaction_id, source: r.source, event_ms: event_ms,
                     reported_ms: r.reported_ms, site_id: site_id})
WITH r, card_id, user_id, site_id, td, event_ms
OPTIONAL MATCH (c:Card {id: card_id})
OPTIONAL MATCH (u:User {id: user_id})
OPTIONAL MATCH (ts:Site {id: site_id})
OPTIONAL MATCH (ld:Device {id: r.device_id})
WITH r, c, u, ts, coalesce(td, ld) AS td, card_id, user_id, event_ms
SET c:ConfirmedFraud, u:ConfirmedFraud, td:ConfirmedFraud,
    c.fraud_confirmed_ms = CASE WHEN c.fraud_confirmed_ms > event_ms THEN c.fraud_confirmed_ms ELSE event_ms END,
    u.fraud_confirmed_ms = CASE WHEN u.fraud_confirmed_ms > event_ms THEN u.fraud_confirmed_ms ELSE event_ms END,
    td.fraud_confirmed_ms = CASE WHEN td.fraud_confirmed_ms > event_ms THEN td.fraud_confirmed_ms ELSE event_ms END,
    c.fraud_reported_ms = CASE WHEN c.fraud_reported_ms <= r.reported_ms THEN c.fraud_reported_ms ELSE r.reported_ms END,
    u.fraud_reported_ms = CASE WHEN u.fraud_reported_ms <= r.reported_ms THEN u.fraud_reported_ms ELSE r.reported_ms END,
    td.fraud_reported_ms = CASE WHEN td.fraud_reported_ms <= r.reported_ms THEN td.fraud_reported_ms ELSE r.reported_ms END,
    ts.fraud_count = coalesce(ts.fraud_count, 0) + 1,
    ts.last_fraud_ms = CASE WHEN ts.last_fraud_ms > event_ms THEN ts.last_fraud_ms ELSE event_ms END
WITH r, c, ts, td, card_id, user_id, event_ms
OPTIONAL MATCH (c)-[p:PAID_AT]->(ts)
SET p.fraud_count = p.fraud_count + 1
RETURN r.transaction_id AS transaction_id, card_id, user_id, ts.id AS site_id, td.id AS device_id,
       event_ms
