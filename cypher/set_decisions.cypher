// name: set_decisions
// purpose: record the detector's review/block decisions on their transaction detail nodes (for analysts; the decisions topic and PostgreSQL hold every decision); returns the ids found
// params: rows: list<map{id: string, decision: string, score: float, reasons: list<string>}>
// returns: id: string
UNWIND $rows AS r
MATCH (t:Transaction {id: r.id})
SET t.decision = r.decision, t.score = r.score, t.reasons = r.reasons
RETURN t.id AS id
