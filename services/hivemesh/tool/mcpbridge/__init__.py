"""The Model Context Protocol bridge: configured MCP servers, supervised, with their tools served
through the registry. Needs the optional extra ``hivemesh[mcp]``."""
