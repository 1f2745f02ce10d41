"""Effects on the data: the database, the backup catalogue, snapshots, quarantine, salvage, restore."""
