"""lmech.models"""
