// formatter placeholder
