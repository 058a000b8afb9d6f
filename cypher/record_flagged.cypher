// name: record_flagged
// purpose: with FRAUDGRAPH_GRAPH_DETAIL=flagged, the daemon's review/block decisions with their transaction detail (the projection writes none): the Transaction node linked to its card, site and device, and the decision on it (labelled fraud if its label came first); a replay changes nothing; returns the ids written (a row whose card, site or device is not projected yet is not: it is tried again)
// params: rows: list<map{id, card_id, site_id, device_id, user_id, event_ms, amount_minor, currency, country, ip_address, merchant_category, card_present, decision: string, score: float, reasons: list<string>}>
// returns: id: string
UNWIND $rows AS r
MATCH (c:Card {id: r.card_id})
MATCH (s:Site {id: r.site_id})
WITH r, c, s
WHERE r.device_id IS NULL OR EXISTS { (:Device {id: r.device_id}) }
OPTIONAL MATCH (known:FraudLabel {id: r.id})
WITH r, c, s, known IS NOT NULL AS fraud
MERGE (t:Transaction {id: r.id})
ON CREATE SET t.event_ms = r.event_ms, t.amount_minor = r.amount_minor, t.currency = r.currency,
              t.country = r.country, t.ip_address = r.ip_address,
              t.merchant_category = r.merchant_category, t.card_present = r.card_present,
              t.user_id = r.user_id,
              t.label = CASE WHEN fraud THEN 'fraud' END
SET t.decision = r.decision, t.score = r.score, t.reasons = r.reasons
MERGE (c)-[:MADE]->(t)
MERGE (t)-[:AT]->(s)
WITH t, r
CALL (t, r) {
  MATCH (d:Device {id: r.device_id})
  MERGE (t)-[:ON]->(d)
}
RETURN t.id AS id
