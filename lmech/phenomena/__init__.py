"""lmech.phenomena"""
