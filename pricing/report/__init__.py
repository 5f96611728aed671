"""The HTML report of a stored run or scenario."""
