-- What a classifying playbook's run decided (its `classification:` block,
-- rendered): JSON {label, probability, decided_by, text}; NULL for other runs.
ALTER TABLE runs ADD COLUMN classification TEXT;
