-- role:       plan input
-- grain:      item × location
-- inputs:     supply (optional: no rows when absent)
-- parameters: $1 cutoff (date)
-- output:     item_id, location_id, the terms of the last supply row on or before the cutoff:
--             lead_time_days, review_period_days, service_level, on_order (NULL: use the settings)
SELECT item_id, location_id, lead_time_days, review_period_days, service_level, on_order
FROM (
    SELECT
        CAST(item_id AS VARCHAR) AS item_id,
        CAST(location_id AS VARCHAR) AS location_id,
        CAST(lead_time_days AS DOUBLE) AS lead_time_days,
        CAST(review_period_days AS DOUBLE) AS review_period_days,
        CAST(service_level AS DOUBLE) AS service_level,
        CAST(on_order AS DOUBLE) AS on_order,
        ROW_NUMBER() OVER (PARTITION BY item_id, location_id ORDER BY CAST(date AS DATE) DESC) AS rn
    FROM supply
    WHERE CAST(date AS DATE) <= $1
) latest
WHERE rn = 1
