"""lmech.theory"""
