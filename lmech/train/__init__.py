"""lmech.train"""
