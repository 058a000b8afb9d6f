// name: blocked_nodes
// purpose: every entity node carrying the blocked mark (label :Blocked), to reconcile the marks with the PostgreSQL blocklist, which is the record
// params: none
// returns: label: string, id: string
MATCH (n:Blocked)
RETURN [l IN labels(n) WHERE l IN ['Card', 'User', 'Device', 'IP', 'Site']][0] AS label, n.id AS id
