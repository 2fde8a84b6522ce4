-- Status events once per status and group member (`recipient_participant_id`; ''
-- when the status is not about one), not once per status.
ALTER TABLE status_events ADD COLUMN participant text NOT NULL DEFAULT '';
ALTER TABLE status_events DROP CONSTRAINT status_events_pkey,
    ADD PRIMARY KEY (subject, status, participant);
