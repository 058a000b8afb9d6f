// name: detect_sites
// purpose: per-batch compromised-site check as of $known_ms: the confirmed frauds at each site whose labels were reported by $known_ms and that happened at or after $from_ms (report time and event time of each); returns only the sites with at least $min_frauds of them. The caller counts per transaction, as of that transaction's own time.
// params: ids: list<string>, known_ms: integer, from_ms: integer, min_frauds: integer
// returns: id: string, frauds: list<list<integer>>
UNWIND $ids AS id
CALL (id) {
  MATCH (l:FraudLabel {site_id: id})
  WHERE l.reported_ms <= $known_ms AND l.event_ms >= $from_ms
  RETURN collect([l.reported_ms, l.event_ms]) AS frauds
}
WITH id, frauds
WHERE size(frauds) >= $min_frauds
RETURN id, frauds
