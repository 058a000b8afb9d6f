// name: gnn_write_scores
// purpose: write the GNN's risk score and the model version onto card, user and device nodes, one batch per call; label :HighRisk on those at or above high_risk (the flag threshold), removed from the others
// params: cards: list<map{id: string, score: float}>, users: list<map{id: string, score: float}>, devices: list<map{id: string, score: float}>, model: string, scored_ms: integer, high_risk: float
// returns: nothing
CALL () { UNWIND $cards AS r MATCH (n:Card {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms FOREACH (_ IN CASE WHEN r.score >= $high_risk THEN [1] ELSE [] END | SET n:HighRisk) FOREACH (_ IN CASE WHEN r.score < $high_risk THEN [1] ELSE [] END | REMOVE n:HighRisk) }
CALL () { UNWIND $users AS r MATCH (n:User {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms FOREACH (_ IN CASE WHEN r.score >= $high_risk THEN [1] ELSE [] END | SET n:HighRisk) FOREACH (_ IN CASE WHEN r.score < $high_risk THEN [1] ELSE [] END | REMOVE n:HighRisk) }
CALL () { UNWIND $devices AS r MATCH (n:Device {id: r.id}) SET n.risk_score = r.score, n.risk_model = $model, n.risk_scored_ms = $scored_ms FOREACH (_ IN CASE WHEN r.score >= $high_risk THEN [1] ELSE [] END | SET n:HighRisk) FOREACH (_ IN CASE WHEN r.score < $high_risk THEN [1] ELSE [] END | REMOVE n:HighRisk) }
