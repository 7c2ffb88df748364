"""lmech.observables"""
