// name: label_fraud
// purpose: apply confirmed-fraud labels once each (a FraudLabel node per transaction makes a replay a no-op): mark the transaction, its card, user and device as confirmed fraud, count the fraud at the site and on the card-site relationship; resolves entities from the transaction detail in the graph, else from the label's own ids
// params: rows: list<map{transaction_id: string, card_id: string|null, user_id: string|null, event_ms: integer, source: string}>
// returns: transaction_id: string, card_id: string|null, user_id: string|null, site_id: string|null, device_id: string|null
UNWIND $rows AS r
OPTIONAL MATCH (seen:FraudLabel {id: r.transaction_id})
WITH r WHERE seen IS NULL
CREATE (:FraudLabel {id: r.transaction_id, source: r.source, event_ms: r.event_ms})
WITH r
OPTIONAL MATCH (t:Transaction {id: r.transaction_id})
OPTIONAL MATCH (t)<-[:MADE]-(tc:Card)
OPTIONAL MATCH (t)-[:AT]->(ts:Site)
OPTIONAL MATCH (t)-[:ON]->(td:Device)
SET t.label = 'fraud'
WITH r, t, coalesce(tc.id, r.card_id) AS card_id, coalesce(t.user_id, r.user_id) AS user_id,
     ts, td, coalesce(t.event_ms, r.event_ms) AS event_ms
OPTIONAL MATCH (c:Card {id: card_id})
OPTIONAL MATCH (u:User {id: user_id})
SET c:ConfirmedFraud, u:ConfirmedFraud, td:ConfirmedFraud,
    c.fraud_confirmed_ms = CASE WHEN c.fraud_confirmed_ms > event_ms THEN c.fraud_confirmed_ms ELSE event_ms END,
    u.fraud_confirmed_ms = CASE WHEN u.fraud_confirmed_ms > event_ms THEN u.fraud_confirmed_ms ELSE event_ms END,
    td.fraud_confirmed_ms = CASE WHEN td.fraud_confirmed_ms > event_ms THEN td.fraud_confirmed_ms ELSE event_ms END,
    ts.fraud_count = coalesce(ts.fraud_count, 0) + 1,
    ts.last_fraud_ms = CASE WHEN ts.last_fraud_ms > event_ms THEN ts.last_fraud_ms ELSE event_ms END
WITH r, c, ts, td, card_id, user_id
OPTIONAL MATCH (c)-[p:PAID_AT]->(ts)
SET p.fraud_count = p.fraud_count + 1
RETURN r.transaction_id AS transaction_id, card_id, user_id, ts.id AS site_id, td.id AS device_id
