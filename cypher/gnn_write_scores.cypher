// name: gnn_write_scores
// purpose: write the GNN's risk score and the model version onto card, user and device nodes, one batch per call
// params: cards: list<map{id: string, score: float}>, users: list<map{id: string, score: float}>, devices: list<map{id: string, score: float}>, model: string, scored_ms: integer
// returns: nothing
CALL () { UNWIND $cards AS r MATCH (n:Card {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms }
CALL () { UNWIND $users AS r MATCH (n:User {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms }
CALL () { UNWIND $devices AS r MATCH (n:Device {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms }
