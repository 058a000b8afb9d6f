// name: gnn_nodes
// purpose: every entity node of the fraud graph, for the GNN export (ids of nodes without relationships included)
// params: none
// returns: label: string, id: string
MATCH (n)
WHERE n:User OR n:Card OR n:Site OR n:Device OR n:IP
RETURN head([l IN labels(n) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) AS label, n.id AS id
