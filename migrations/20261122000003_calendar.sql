-- The official working-day calendar as data (domain.md §5): one row per covered year (with the
-- notice it comes from) and one per exceptional day. Days not listed follow Monday-Friday.
-- Imported with `hcp calendar import FILE`; a year is replaced whole.
CREATE TABLE calendar_years (
    year        integer PRIMARY KEY CHECK (year BETWEEN 1949 AND 9999),
    source      text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE calendar_days (
    day  date PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    year integer NOT NULL REFERENCES calendar_years (year) ON DELETE CASCADE,
    CHECK (extract(year FROM day) = year)
);
