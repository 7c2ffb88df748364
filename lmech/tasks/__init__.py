"""lmech.tasks"""
