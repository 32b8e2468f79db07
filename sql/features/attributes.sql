-- attributes: attributes of each series that do not change over time.
--
-- role:       static
-- grain:      item_id × location_id
-- inputs:     target (series, first sale), items, locations (optional: NULL attributes when absent)
-- parameters: $1 cutoff 'YYYY-MM-DD'
-- output:     item_id, location_id, category, brand, region, format, base_price,
--             first_sale_date, item_age_days (days from launch, or from the first sale when the
--             launch date is unknown, to the cutoff)
WITH params AS (
    SELECT CAST($1 AS DATE) AS cutoff
),
series AS (
    SELECT item_id, location_id, MIN(date) AS first_sale_date
    FROM target
    GROUP BY item_id, location_id
),
item_attrs AS (
    SELECT item_id, MIN(category) AS category, MIN(brand) AS brand,
           MIN(CAST(launch_date AS DATE)) AS launch_date, AVG(CAST(base_price AS DOUBLE)) AS base_price
    FROM items
    GROUP BY item_id
),
location_attrs AS (
    SELECT location_id, MIN(region) AS region, MIN(format) AS format
    FROM locations
    GROUP BY location_id
)
SELECT
    s.item_id,
    s.location_id,
    CAST(i.category AS VARCHAR) AS category,
    CAST(i.brand AS VARCHAR) AS brand,
    CAST(l.region AS VARCHAR) AS region,
    CAST(l.format AS VARCHAR) AS format,
    i.base_price,
    s.first_sale_date,
    CAST(CAST(p.cutoff AS INT) - CAST(COALESCE(i.launch_date, s.first_sale_date) AS INT) AS INT) AS item_age_days
FROM params p
CROSS JOIN series s
LEFT JOIN item_attrs i ON i.item_id = s.item_id
LEFT JOIN location_attrs l ON l.location_id = s.location_id
ORDER BY s.item_id, s.location_id
