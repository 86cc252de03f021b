"""Simulation of memxbar's RTL: Verilog export, cached Verilator builds, cocotb testbenches."""
