"""The incident from the design notes, end to end: `scenario` plays it on whatever boto3 points at;
`command` (`diversity-monitor demo`) runs it on the embedded local stack and writes the outputs.
"""
