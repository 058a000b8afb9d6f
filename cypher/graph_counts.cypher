// name: graph_counts
// purpose: node counts per label and relationship counts per type, for `fraudgraph graph stats`
// params: none
// returns: kind: string, name: string, count: integer
CALL () {
  MATCH (n) UNWIND labels(n) AS name RETURN 'node' AS kind, name, count(*) AS count
  UNION ALL
  MATCH ()-[r]->() RETURN 'relationship' AS kind, type(r) AS name, count(*) AS count
}
RETURN kind, name, count
ORDER BY kind, name
