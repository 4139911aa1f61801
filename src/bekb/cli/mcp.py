"""`bekb mcp`: serve the knowledge base to agents over MCP."""
