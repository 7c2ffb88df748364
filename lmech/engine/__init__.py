"""lmech.engine"""
