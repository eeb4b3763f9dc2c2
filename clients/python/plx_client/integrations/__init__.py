"""Integrations with training frameworks (optional extras: `plx-client[lightning]`,
`plx-client[transformers]`). Each reports through `plx_client.tracking`."""
