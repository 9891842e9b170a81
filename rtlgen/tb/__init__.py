"""cocotb testbenches of the generated units (run inside the simulator by ``rtlgen.sim``)."""
