"""The method interface (``base``) and the methods that belong to the framework itself."""
