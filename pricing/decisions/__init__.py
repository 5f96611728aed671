"""The decision stage: rate guidance, supply levers and plans, what-if scenarios."""
