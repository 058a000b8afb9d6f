// name: shortest_path
// purpose: the shortest path (up to 6 hops, any aggregate relationship) between two entities, as alternating node and relationship descriptions
// params: from_label: string, from_id: string, to_label: string, to_id: string
// returns: hops: integer, nodes: list<string>, relationships: list<string>
CALL () {
  MATCH (n:User {id: $from_id}) WHERE $from_label = 'User' RETURN n AS a
  UNION MATCH (n:Card {id: $from_id}) WHERE $from_label = 'Card' RETURN n AS a
  UNION MATCH (n:Device {id: $from_id}) WHERE $from_label = 'Device' RETURN n AS a
  UNION MATCH (n:IP {id: $from_id}) WHERE $from_label = 'IP' RETURN n AS a
  UNION MATCH (n:Site {id: $from_id}) WHERE $from_label = 'Site' RETURN n AS a
}
CALL () {
  MATCH (n:User {id: $to_id}) WHERE $to_label = 'User' RETURN n AS b
  UNION MATCH (n:Card {id: $to_id}) WHERE $to_label = 'Card' RETURN n AS b
  UNION MATCH (n:Device {id: $to_id}) WHERE $to_label = 'Device' RETURN n AS b
  UNION MATCH (n:IP {id: $to_id}) WHERE $to_label = 'IP' RETURN n AS b
  UNION MATCH (n:Site {id: $to_id}) WHERE $to_label = 'Site' RETURN n AS b
}
MATCH p = shortestPath((a)-[:HOLDS|PAID_AT|USED_ON|USES|FROM_IP*..6]-(b))
RETURN length(p) AS hops, [x IN nodes(p) | head([l IN labels(x) WHERE NOT l IN ['Blocked', 'ConfirmedFraud', 'HighRisk']]) + ' ' + x.id] AS nodes,
       [r IN relationships(p) | type(r)] AS relationships
