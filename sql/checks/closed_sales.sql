-- closed_sales: sales recorded on a day their location (or item at the location) was closed.
--
-- kind:       rows (quarantined and left out: a closed day carries no demand signal, and a sale
--             on it is a recording error or a closure that did not happen)
-- inputs:     sales, closures (NULL location_id: every location; NULL item_id: every item)
-- parameters: $1 run date (unused), $2 cutoff (unused)
-- output:     table_name, date, item_id, location_id, units, revenue, price, reason
SELECT
    'sales' AS table_name,
    CAST(s.date AS DATE) AS date,
    CAST(s.item_id AS VARCHAR) AS item_id,
    CAST(s.location_id AS VARCHAR) AS location_id,
    CAST(s.units AS DOUBLE) AS units,
    CAST(s.revenue AS DOUBLE) AS revenue,
    CAST(s.price AS DOUBLE) AS price,
    'sold on a closed day (closure ' || CAST(MIN(CAST(c.start_date AS DATE)) AS VARCHAR) || ' to '
        || CAST(MIN(CAST(c.end_date AS DATE)) AS VARCHAR)
        || COALESCE(': ' || MIN(CAST(c.reason AS VARCHAR)), '') || ')' AS reason
FROM sales s
JOIN closures c
  ON CAST(s.date AS DATE) >= CAST(c.start_date AS DATE)
 AND CAST(s.date AS DATE) <= CAST(c.end_date AS DATE)
 AND (c.location_id IS NULL OR CAST(c.location_id AS VARCHAR) = CAST(s.location_id AS VARCHAR))
 AND (c.item_id IS NULL OR CAST(c.item_id AS VARCHAR) = CAST(s.item_id AS VARCHAR))
GROUP BY s.date, s.item_id, s.location_id, s.units, s.revenue, s.price
