"""Kraken connectivity: signing, REST clients (Spot and Futures), WebSocket feeds."""
