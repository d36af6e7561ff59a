-- Runs once, when the data directory is first initialised. The application creates
-- and migrates its own tables; this only pins the schema defaults so that Chinese text
-- (4-byte characters included) and case-insensitive comparisons behave the same on
-- every server, whatever its compiled-in defaults.
ALTER DATABASE `bloginfer` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci;
