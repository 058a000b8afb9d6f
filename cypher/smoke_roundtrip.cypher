// name: smoke_roundtrip
// purpose: write and read back one marker node (used by `fraudgraph smoke`)
// params: id: string
// returns: id: string, checked_at: datetime
MERGE (s:SmokeCheck {id: $id})
SET s.checked_at = datetime()
RETURN s.id AS id, s.checked_at AS checked_at
