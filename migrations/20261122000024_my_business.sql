-- 我的业务 (docs/domain.md §2.1): a platform names the citizen a service record belongs to by its
-- own user id, stored only as a keyed digest, so it can list that citizen's stages still open
-- for rating.
ALTER TABLE service_records ADD COLUMN platform_user bytea;
CREATE INDEX service_records_platform_user ON service_records (reported_by, platform_user)
    WHERE platform_user IS NOT NULL;
