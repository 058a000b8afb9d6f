// name: smoke_cleanup
// purpose: remove the marker node written by smoke_roundtrip
// params: id: string
// returns: deleted: integer
MATCH (s:SmokeCheck {id: $id})
DETACH DELETE s
RETURN count(*) AS deleted
