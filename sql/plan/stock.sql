-- role:       plan input
-- grain:      item × location
-- inputs:     inventory (optional: no rows when absent)
-- parameters: $1 cutoff (date)
-- output:     item_id, location_id, stock_date (the last inventory day on or before the cutoff),
--             on_hand (units at the end of that day)
SELECT item_id, location_id, stock_date, on_hand
FROM (
    SELECT
        CAST(item_id AS VARCHAR) AS item_id,
        CAST(location_id AS VARCHAR) AS location_id,
        CAST(date AS DATE) AS stock_date,
        CAST(on_hand AS DOUBLE) AS on_hand,
        ROW_NUMBER() OVER (PARTITION BY item_id, location_id ORDER BY CAST(date AS DATE) DESC) AS rn
    FROM inventory
    WHERE CAST(date AS DATE) <= $1 AND on_hand IS NOT NULL
) latest
WHERE rn = 1
