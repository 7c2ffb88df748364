"""lmech.store"""
