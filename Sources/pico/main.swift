print("pico")
