"""lmech.report"""
